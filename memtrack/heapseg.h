/* heapseg.h - layout of the segment's heap area (lks_heap_area()), written by
 * libmemtrack.so and read by the CLI.
 *
 * What lives where:
 *   - per-subsystem counters (struct lks_subsys heap_*) and per-site counters
 *     (struct lks_site heap_*) are in the core tables;
 *   - this area holds what depends on time or needs a walk over every live
 *     allocation: live bytes by age per subsystem, the oldest live
 *     allocation per site, the largest live allocations ("retained"),
 *     since-mark totals per subsystem, double frees, and the shim's own
 *     bookkeeping (unknown frees, metadata size).
 *
 * The shim's aggregator rewrites the area (and the heap_* counters in the core
 * tables) about once a second, on a mark, on a refresh request and at exit.
 * Between aggregations the heap_* counters lag by at most that period; at
 * exit they are exact.
 *
 * Readers: take a private copy (lks_segment_load), then call
 * lks_heapseg_check(); a copy taken while seq was odd is torn, load again.
 * Everything is validated: indices are checked against sites_cap and
 * LKS_MAX_SUBSYS before use.
 *
 * Requests from readers (the only fields a reader writes, through
 * lks_segment_map_rw): refresh_req++ asks for an aggregation now; the shim
 * sets refresh_done to the value it served. Marks use the core header
 * (mark_seq / mark_applied_seq).
 */
#ifndef LKS_HEAPSEG_H
#define LKS_HEAPSEG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "segment.h"

#define LKS_HEAP_MAGIC "LKSHEAP\1"
#define LKS_HEAP_VERSION 2
#define LKS_HEAP_AGES 6       /* < 1 s, < 10 s, < 1 min, < 10 min, < 1 h, older */
#define LKS_HEAP_RETAINED 32  /* largest live allocations kept */
#define LKS_HEAP_DOUBLE_FREES 16

/* Upper bounds (exclusive) of the age buckets, in seconds; the last is open. */
static const int64_t lks_heap_age_edges_s[LKS_HEAP_AGES - 1] = {1, 10, 60, 600, 3600};
static const char *const lks_heap_age_names[LKS_HEAP_AGES] = {"lt_1s", "lt_10s", "lt_1m",
                                                              "lt_10m", "lt_1h", "older"};

/* One live allocation among the largest. site is index + 1 (0: no site). */
struct lks_heap_alloc {
    uint64_t addr;
    uint64_t size;
    int64_t birth_mono_ns;
    uint32_t site;
    uint16_t subsys;
    uint16_t _pad;
};

/* A free of memory that the shim had already seen freed. Sites are index + 1;
 * first_free_site holds only the caller of the first free (one frame). The
 * second free is not forwarded to libc (it would abort the program). */
struct lks_heap_double_free {
    uint64_t addr;
    uint64_t size;
    int64_t when_mono_ns;
    uint32_t alloc_site;
    uint32_t first_free_site;
    uint32_t second_free_site;
    uint16_t subsys;
    uint16_t _pad;
};

struct lks_heapseg {
    char magic[8];
    uint32_t version;
    uint32_t area_size;   /* bytes of the area this struct and its tail use */
    uint32_t sites_cap;   /* == header sites_cap; length of site_oldest_ns */
    uint32_t nretained;   /* valid entries of retained[] */
    _Atomic uint64_t seq; /* odd while the aggregator rewrites the area */
    int64_t aggregated_mono_ns; /* ages below are as of this instant */
    uint64_t aggregations;
    uint32_t mark_gen;    /* marks applied so far */
    uint32_t final;       /* 1: written by the exit destructor */

    _Atomic uint64_t refresh_req;  /* reader: ++ to ask for an aggregation */
    _Atomic uint64_t refresh_done; /* shim: last refresh_req served */

    /* The shim's own bookkeeping. */
    _Atomic uint64_t unknown_frees;   /* free/realloc of memory never tracked, forwarded */
    _Atomic uint64_t failed_allocs;   /* libc returned NULL; passed through */
    _Atomic uint64_t untracked_allocs; /* made inside the shim's own work, not counted */
    _Atomic uint64_t table_full;      /* allocations not tracked: table could not grow */
    _Atomic uint32_t ndouble_frees;   /* total seen; the first LKS_HEAP_DOUBLE_FREES kept */
    uint32_t _pad0;
    uint64_t table_bytes;   /* private metadata of the allocation table */
    uint64_t tracked_live;  /* live allocations in the table at aggregation */

    int64_t age_bytes[LKS_MAX_SUBSYS][LKS_HEAP_AGES];
    int64_t age_allocs[LKS_MAX_SUBSYS][LKS_HEAP_AGES];
    int64_t mark_live_bytes[LKS_MAX_SUBSYS]; /* allocated since the mark, still live */
    int64_t mark_live_allocs[LKS_MAX_SUBSYS];
    struct lks_heap_alloc retained[LKS_HEAP_RETAINED]; /* largest first */
    struct lks_heap_double_free double_frees[LKS_HEAP_DOUBLE_FREES];

    /* Birth (CLOCK_MONOTONIC ns) of each site's oldest live allocation,
     * indexed by site index; 0 when the site has nothing live. */
    int64_t site_oldest_ns[];
};

/* Bytes the area needs for a segment with sites_cap sites. */
static inline uint64_t lks_heapseg_size(uint32_t sites_cap) {
    return sizeof(struct lks_heapseg) + (uint64_t)sites_cap * sizeof(int64_t);
}

/* Reader: the heap area of a validated segment copy, or NULL with a reason.
 * Checks magic, version, sizes and that the copy is not torn. */
static inline struct lks_heapseg *lks_heapseg_check(struct lks_header *h, const char **why) {
    if (!(atomic_load(&h->features) & LKS_FEATURE_HEAP)) {
        *why = "process not traced with the heap shim (libmemtrack.so)";
        return NULL;
    }
    struct lks_heapseg *hs = (struct lks_heapseg *)lks_heap_area(h);
    if (h->heap_size < sizeof(struct lks_heapseg) || memcmp(hs->magic, LKS_HEAP_MAGIC, 8) != 0) {
        *why = "heap area missing or too small (LEAKSCOPE_HEAP_AREA)";
        return NULL;
    }
    if (hs->version != LKS_HEAP_VERSION || hs->sites_cap != h->sites_cap ||
        hs->area_size != lks_heapseg_size(hs->sites_cap) || hs->area_size > h->heap_size ||
        hs->nretained > LKS_HEAP_RETAINED) {
        *why = "heap area corrupt or of another version";
        return NULL;
    }
    if (atomic_load(&hs->seq) & 1) {
        *why = "heap area caught mid-update";
        return NULL;
    }
    return hs;
}

#endif
