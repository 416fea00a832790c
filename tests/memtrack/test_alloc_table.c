/* test_alloc_table.c - the striped pointer table on its own: records found
 * after every insert, gone after every remove, through growth (capacities
 * 2^k and 3 * 2^k) and backward-shift deletion, with the address patterns
 * of a real heap (dense pages) and of mmap'ed blocks (page-aligned). */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "alloc_table.h"

#define N 200000

static uintptr_t addr(int i, int pattern) {
    if (pattern == 0) return 0x7f0000000000ull + (uintptr_t)i * 48;  /* dense */
    if (pattern == 1) return 0x7f0000000010ull + (uintptr_t)i * 4096; /* page-aligned */
    return 0x560000000000ull + (((uintptr_t)i * 2654435761u) % (1u << 28) << 4); /* scattered */
}

static void churn(int pattern) {
    uintptr_t *p = malloc(sizeof(uintptr_t) * N);
    for (int i = 0; i < N; i++) p[i] = addr(i, pattern);
    for (int i = 0; i < N; i++) {
        struct alloc_rec r = alloc_rec_make(p[i], (uint64_t)i, 0, (uint32_t)i & 0xfff, 1, 0), old;
        struct stripe *s = stripe_of(p[i]);
        stripe_lock(s);
        int rc = stripe_insert(s, &r, &old);
        stripe_unlock(s);
        cr_assert_eq(rc, 0);
    }
    /* Remove every other one, then check all. */
    for (int i = 0; i < N; i += 2) {
        struct alloc_rec out;
        struct stripe *s = stripe_of(p[i]);
        stripe_lock(s);
        cr_assert_eq(stripe_remove(s, p[i], &out), 1, "record %d missing", i);
        stripe_unlock(s);
        cr_assert_eq(out.ptr, p[i]);
    }
    for (int i = 0; i < N; i++) {
        struct alloc_rec out;
        struct stripe *s = stripe_of(p[i]);
        stripe_lock(s);
        int found = stripe_remove(s, p[i], &out);
        stripe_unlock(s);
        cr_assert_eq(found, i % 2, "record %d: found %d", i, found);
        if (found) cr_assert_eq(REC_SIZE(&out), (uint64_t)i);
    }
    uint32_t left = 0;
    for (uint32_t k = 0; k < NSTRIPES; k++) left += alloc_stripes[k].count;
    cr_assert_eq(left, 0);
    free(p);
}

Test(alloc_table, dense_heap_addresses) { churn(0); }
Test(alloc_table, page_aligned_blocks) { churn(1); }
Test(alloc_table, scattered_addresses) { churn(2); }

/* Records per live block while a heap grows to its peak (the table does
 * not shrink, so the peak is what counts). */
static void metadata_at_peak(int pattern) {
    uint64_t worst = 0;
    for (int n = 0; n < N; n++) {
        struct alloc_rec r = alloc_rec_make(addr(n, pattern), 1, 0, 0, 1, 0), old;
        stripe_insert(stripe_of(r.ptr), &r, &old);
        if (n >= 20000 && n % 997 == 0) {
            uint64_t per = table_bytes() / (uint64_t)(n + 1);
            if (per > worst) worst = per;
        }
    }
    cr_expect_leq(worst, 48, "%llu bytes of records per live block", (unsigned long long)worst);
}

Test(alloc_table, metadata_dense) { metadata_at_peak(0); }
Test(alloc_table, metadata_scattered) { metadata_at_peak(2); }
