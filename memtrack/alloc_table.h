/* alloc_table.h - every live allocation the shim tracks: pointer -> size,
 * call site, subsystem, birth, mark generation.
 *
 * Kept in the shim's private memory (anonymous mmap, so a forked child
 * inherits the parent's table as it was at fork), split into stripes by
 * pointer hash, each a small open-addressed table behind its own spinlock:
 * no global lock on the hot path. 24 bytes per record; a stripe grows by 1.5
 * or 4/3 at 80% load, so metadata stays between 30 and 45 bytes per live
 * allocation.
 *
 * Each stripe also remembers its last few frees, so that a second free of the
 * same pointer is recognized as a double free instead of reaching libc.
 *
 * Callers lock a stripe, call the stripe_* functions, and unlock. Nothing
 * here allocates with malloc.
 */
#ifndef MEMTRACK_ALLOC_TABLE_H
#define MEMTRACK_ALLOC_TABLE_H

#include <stdatomic.h>
#include <stdint.h>

struct alloc_rec {
    uint64_t ptr;     /* 0: empty slot */
    uint64_t size_gen; /* requested size (low 48 bits), mark generation (high 16) */
    uint32_t site_subsys; /* site index + 1 (low 24 bits, 0 = none), subsystem (high 8) */
    uint32_t birth_ms; /* ms since the shim's clock epoch */
};

#define REC_SIZE(r) ((r)->size_gen & 0xffffffffffffull)
#define REC_GEN(r) ((uint16_t)((r)->size_gen >> 48))
#define REC_SITE(r) ((r)->site_subsys & 0xffffffu)
#define REC_SUBSYS(r) ((r)->site_subsys >> 24)

static inline struct alloc_rec alloc_rec_make(uintptr_t ptr, uint64_t size, uint16_t gen,
                                              uint32_t site, uint32_t subsys, uint32_t birth_ms) {
    struct alloc_rec r = {ptr, (size & 0xffffffffffffull) | ((uint64_t)gen << 48),
                          (site & 0xffffffu) | (subsys << 24), birth_ms};
    return r;
}

/* A recent free, kept per stripe to recognize double frees. */
struct freed_rec {
    uint64_t ptr;
    uint64_t size;
    uint32_t site_subsys;
    uint32_t _pad;
    uint64_t free_ra; /* return address of the first free's caller */
};

#define FREED_PER_STRIPE 8

/* One cache line per stripe, so that all stripe heads stay in cache; the
 * recent frees live apart (touched by frees only). */
struct stripe {
    _Atomic int lock;
    uint32_t count;
    uint32_t cap; /* power of two, 0 until first insert */
    uint32_t freed_next;
    struct alloc_rec *slots;
} __attribute__((aligned(64)));

#define STRIPE_BITS 10
#define NSTRIPES (1u << STRIPE_BITS)

extern struct stripe alloc_stripes[NSTRIPES];
/* Bit i: stripe i has had records (set at its first growth, never
 * cleared), so that a walk skips, and does not fault in, the others. */
extern _Atomic uint64_t alloc_stripes_used[NSTRIPES / 64];
extern struct freed_rec alloc_freed[NSTRIPES][FREED_PER_STRIPE];

/* Where a block's record goes. The stripe is a hash of the block's 1 MiB
 * region: threads allocate from their own arenas, hence mostly from their
 * own stripes, and stripe locks and records do not bounce between cores.
 * Within a stripe, the slot is a hash of the address (slot_of). */
static inline uint64_t region_hash(uintptr_t p) {
    return (uint64_t)(p >> 20) * 0x9E3779B97F4A7C15ull;
}

/* cap is 2^k or 3 * 2^k (>= 16), so that a stripe grows by 1.5 or 4/3 and
 * stays above 53 % load: at most 45 bytes of records per live block. A
 * plain hash, not locality: keeping a page's blocks in consecutive slots
 * made runs that linear probing merged into long clusters
 * (docs/ARCHITECTURE-memtrack.md). */
static inline uint32_t slot_of(uintptr_t p, uint32_t cap) {
    uint64_t h = (uint64_t)(p >> 4) * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(((h >> 32) * cap) >> 32);
}

static inline uint32_t slot_next(uint32_t i, uint32_t cap) { return i + 1 == cap ? 0 : i + 1; }

static inline struct stripe *stripe_of(uintptr_t p) {
    return &alloc_stripes[region_hash(p) >> (64 - STRIPE_BITS)];
}

/* Starts loading the slot where ptr's record lives, so that work done
 * before the stripe is locked overlaps the cache miss. */
static inline void stripe_prefetch(struct stripe *s, uintptr_t ptr) {
    struct alloc_rec *slots = __atomic_load_n(&s->slots, __ATOMIC_RELAXED);
    uint32_t cap = __atomic_load_n(&s->cap, __ATOMIC_RELAXED);
    /* Read without the lock: slots and cap may come from different
     * moments of a growth; a wrong address only makes a useless prefetch. */
    if (slots && cap) __builtin_prefetch(&slots[slot_of(ptr, cap)], 1);
}

void stripe_lock(struct stripe *s);
/* For paths that may run while this thread already holds a stripe (a signal
 * handler's malloc, fork handlers): returns 1 if taken. */
static inline int stripe_trylock(struct stripe *s) {
    int expected = 0;
    return atomic_compare_exchange_strong_explicit(&s->lock, &expected, 1, memory_order_acquire,
                                                   memory_order_relaxed);
}
static inline void stripe_unlock(struct stripe *s) {
    atomic_store_explicit(&s->lock, 0, memory_order_release);
}

/* Inserts rec. If rec->ptr is already present (its free was never seen),
 * the old record is replaced and copied to *replaced; returns 1 then, 0 for a
 * plain insert, -1 if the stripe could not grow (rec not stored). */
int stripe_insert(struct stripe *s, const struct alloc_rec *rec, struct alloc_rec *replaced);

/* Removes ptr; copies its record to *out and returns 1, or returns 0. */
int stripe_remove(struct stripe *s, uintptr_t ptr, struct alloc_rec *out);

/* Remembers a free; finds one (returns 1) or forgets one. */
void stripe_note_freed(struct stripe *s, const struct alloc_rec *rec, uint64_t free_ra);
int stripe_find_freed(struct stripe *s, uintptr_t ptr, struct freed_rec *out);
void stripe_forget_freed(struct stripe *s, uintptr_t ptr);

/* Around fork: hold every stripe so the child inherits a consistent table. */
void table_lock_all(void);
void table_unlock_all(void);

/* Bytes of private memory the table uses for records. */
uint64_t table_bytes(void);

#endif
