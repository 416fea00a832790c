/* alloc_table.c - the striped pointer table (contract in alloc_table.h).
 *
 * Linear probing with backward-shift deletion: no tombstones, so a churn of
 * malloc/free never degrades a stripe. Growth maps a new array with mmap and
 * rehashes under the stripe's lock; that is the only syscall on the table's
 * path and it is amortized over the doubling.
 */
#define _GNU_SOURCE
#include "alloc_table.h"

#include <sched.h>
#include <string.h>
#include <sys/mman.h>

struct stripe alloc_stripes[NSTRIPES];
_Atomic uint64_t alloc_stripes_used[NSTRIPES / 64];
struct freed_rec alloc_freed[NSTRIPES][FREED_PER_STRIPE];

static inline struct freed_rec *freed_of(struct stripe *s) {
    return alloc_freed[s - alloc_stripes];
}
static _Atomic uint64_t g_table_bytes;

#define INITIAL_CAP 16

void stripe_lock(struct stripe *s) {
    for (int spins = 0;; spins++) {
        if (atomic_load_explicit(&s->lock, memory_order_relaxed) == 0) {
            int expected = 0;
            if (atomic_compare_exchange_weak_explicit(&s->lock, &expected, 1,
                                                      memory_order_acquire,
                                                      memory_order_relaxed))
                return;
        }
        if (spins < 64) __builtin_ia32_pause();
        else sched_yield();
    }
}

static int grow(struct stripe *s) {
    uint32_t ncap = !s->cap ? INITIAL_CAP : (s->cap & (s->cap - 1)) == 0 ? s->cap / 2 * 3
                                                                         : s->cap / 3 * 4;
    size_t bytes = (size_t)ncap * sizeof(struct alloc_rec);
    struct alloc_rec *ns = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (ns == MAP_FAILED) return -1;
    if (!s->cap) {
        uint32_t i = (uint32_t)(s - alloc_stripes);
        atomic_fetch_or(&alloc_stripes_used[i / 64], (uint64_t)1 << (i % 64));
    }
    for (uint32_t i = 0; i < s->cap; i++) {
        if (!s->slots[i].ptr) continue;
        uint32_t j = slot_of(s->slots[i].ptr, ncap);
        while (ns[j].ptr) j = slot_next(j, ncap);
        ns[j] = s->slots[i];
    }
    if (s->slots) {
        munmap(s->slots, (size_t)s->cap * sizeof(struct alloc_rec));
        atomic_fetch_sub(&g_table_bytes, (uint64_t)s->cap * sizeof(struct alloc_rec));
    }
    atomic_fetch_add(&g_table_bytes, bytes);
    s->slots = ns;
    s->cap = ncap;
    return 0;
}

int stripe_insert(struct stripe *s, const struct alloc_rec *rec, struct alloc_rec *replaced) {
    if ((uint64_t)(s->count + 1) * 5 > (uint64_t)s->cap * 4 && grow(s) != 0) return -1;
    uint32_t i = slot_of(rec->ptr, s->cap);
    for (;; i = slot_next(i, s->cap)) {
        if (s->slots[i].ptr == rec->ptr) {
            *replaced = s->slots[i];
            s->slots[i] = *rec;
            return 1;
        }
        if (!s->slots[i].ptr) break;
    }
    s->slots[i] = *rec;
    s->count++;
    return 0;
}

int stripe_remove(struct stripe *s, uintptr_t ptr, struct alloc_rec *out) {
    if (!s->cap) return 0;
    uint32_t cap = s->cap;
    uint32_t i = slot_of(ptr, cap);
    for (;; i = slot_next(i, cap)) {
        if (!s->slots[i].ptr) return 0;
        if (s->slots[i].ptr == ptr) break;
    }
    *out = s->slots[i];
    /* Backward shift: pull later records of the cluster into the hole when
     * their home slot does not lie between the hole and them. */
    uint32_t hole = i;
    for (uint32_t j = slot_next(i, cap); s->slots[j].ptr; j = slot_next(j, cap)) {
        uint32_t home = slot_of(s->slots[j].ptr, cap);
        uint32_t from_home = j >= home ? j - home : j + cap - home;
        uint32_t from_hole = j >= hole ? j - hole : j + cap - hole;
        if (from_home >= from_hole) {
            s->slots[hole] = s->slots[j];
            hole = j;
        }
    }
    s->slots[hole].ptr = 0;
    s->count--;
    return 1;
}

void stripe_note_freed(struct stripe *s, const struct alloc_rec *rec, uint64_t free_ra) {
    struct freed_rec *f = &freed_of(s)[s->freed_next++ % FREED_PER_STRIPE];
    f->ptr = rec->ptr;
    f->size = REC_SIZE(rec);
    f->site_subsys = rec->site_subsys;
    f->free_ra = free_ra;
}

/* Newest first: a pointer freed, reused and freed again is found by its
 * latest free. */
int stripe_find_freed(struct stripe *s, uintptr_t ptr, struct freed_rec *out) {
    for (uint32_t k = 1; k <= FREED_PER_STRIPE; k++) {
        struct freed_rec *f = &freed_of(s)[(s->freed_next - k) % FREED_PER_STRIPE];
        if (f->ptr == ptr) {
            *out = *f;
            return 1;
        }
    }
    return 0;
}

void stripe_forget_freed(struct stripe *s, uintptr_t ptr) {
    struct freed_rec *f = freed_of(s);
    for (int i = 0; i < FREED_PER_STRIPE; i++)
        if (f[i].ptr == ptr) f[i].ptr = 0;
}

void table_lock_all(void) {
    for (uint32_t i = 0; i < NSTRIPES; i++) stripe_lock(&alloc_stripes[i]);
}

void table_unlock_all(void) {
    for (uint32_t i = 0; i < NSTRIPES; i++) stripe_unlock(&alloc_stripes[i]);
}

uint64_t table_bytes(void) { return atomic_load(&g_table_bytes); }
