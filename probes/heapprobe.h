/* heapprobe.h - the heap probe's kernel tables (heapprobe.bpf.c), read by
 * its loader (heapprobe.c). Fixed-size types only: shared with BPF.
 *
 * Live allocations since attach are kept in the kernel (`live`, by address);
 * per call site totals in `site_stats`, the stacks in `site_stacks`, both by
 * stack hash. The loader walks these tables; nothing is streamed.
 */
#ifndef LKS_HEAPPROBE_H
#define LKS_HEAPPROBE_H

#define HP_MAX_FRAMES 16
#define HP_MAX_LIVE (1 << 19)
#define HP_MAX_SITES 16384

struct hp_live {
    unsigned long long size;
    unsigned long long site; /* stack hash */
    unsigned long long birth_ns; /* CLOCK_MONOTONIC */
};

struct hp_stack {
    unsigned int nframes;
    unsigned int _pad;
    unsigned long long frames[HP_MAX_FRAMES]; /* return addresses; [0] exact caller */
};

/* Totals per site since attach. With sampling, counts of sampled events. */
struct hp_site_stats {
    unsigned long long allocs;
    unsigned long long alloc_bytes;
    long long live_allocs;
    long long live_bytes;
    unsigned long long frees;
};

enum hp_stat {
    HP_STAT_UNKNOWN_FREES, /* free/realloc of memory allocated before attach (or unsampled) */
    HP_STAT_FAILED,        /* allocator returned NULL */
    HP_STAT_TABLE_FULL,    /* allocation not recorded: live table full */
    HP_STAT_SKIPPED,       /* not sampled (sampling mode) */
    HP_STAT_SKIPPED_BYTES,
    HP_STAT_COUNT
};

#endif
