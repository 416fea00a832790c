/* counters.h - per-subsystem and per-site heap counters, kept per thread.
 *
 * Two threads allocating from the same call site would otherwise fight over
 * the same cache lines of the segment on every malloc. Instead each thread
 * owns a block of counters that only it writes (plain stores), and the
 * aggregator publishes the sums into the segment's heap_* fields. A free
 * counts in the freeing thread's block, so a block's values may be negative;
 * only the sums mean something. Blocks of exited threads are reused by new
 * threads (their values stay part of the sums).
 *
 * Callers update a block while holding the stripe lock of the allocation, so
 * a fork (which holds every stripe) never sees a table and counters that
 * disagree.
 */
#ifndef MEMTRACK_COUNTERS_H
#define MEMTRACK_COUNTERS_H

#include <stdatomic.h>
#include <stdint.h>

#include "segment.h"
#include "trace.h"

struct site_ctr {
    _Atomic int64_t live_bytes, live_allocs, alloc_bytes, allocs;
};

struct subsys_ctr {
    _Atomic int64_t live_bytes, live_allocs, alloc_bytes, allocs, frees;
};

struct ctr_block {
    _Atomic int owned; /* 1 while a running thread writes it */
    int shared;        /* the fallback block: written with atomic adds */
    /* The owner's last free, passed to libc at its next free (see hooks.c);
     * readers treat it as freed. */
    _Atomic uintptr_t pending_free;
    uintptr_t pending_ra;
    struct subsys_ctr subsys[LKS_MAX_SUBSYS];
    struct site_ctr site[]; /* sites_cap entries, by site index */
};

/* Sets up the fallback block and the thread-exit hook; flush runs the
 * block's pending free when its thread exits. */
int counters_init(uint32_t sites_cap, void (*flush)(struct ctr_block *));

/* The calling thread's block; claims or maps one on first use, falls back to
 * the shared block when that is impossible. Never NULL after init. */
struct ctr_block *counters_mine(void);

/* site is index + 1 (0: none). */
void counters_alloc(struct ctr_block *b, uint32_t site, uint32_t subsys, int64_t size);
void counters_free(struct ctr_block *b, uint32_t site, uint32_t subsys, int64_t size);
/* Undoes counters_free (a realloc that failed keeps its memory). */
void counters_unfree(struct ctr_block *b, uint32_t site, uint32_t subsys, int64_t size);

/* Stores the sums over all blocks into the segment's heap_* counters. */
void counters_publish(struct lks_header *h);
/* The same for one site and one subsystem (used after the exit aggregation). */
void counters_publish_one(struct lks_header *h, uint32_t site, uint32_t subsys);

/* Copies the pending frees of all blocks into out (at most max); returns
 * how many. */
uint32_t counters_pending(uintptr_t *out, uint32_t max);

/* In a forked child: blocks of threads that did not survive are released and
 * totals restart from what is live (allocated == live, frees == 0). */
void counters_after_fork(void);

#endif
