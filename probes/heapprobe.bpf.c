// SPDX-License-Identifier: GPL-2.0
/* heapprobe.bpf.c - allocations and frees of one process, from uprobes on
 * its C library's allocator entry points (attached for that process only,
 * so the breakpoints exist only in its address space).
 *
 * Entry probes remember the request per thread and the call site; return
 * probes record the result in `live`. The call site is exact for the
 * immediate caller (the return address at *sp on entry, no frame pointer
 * needed); further frames come from the kernel's frame-pointer walk and are
 * only as good as the caller's frame pointers.
 *
 * Sampling (sample_bytes > 0): a per-thread byte countdown drawn from an
 * exponential distribution, as tcmalloc does; only allocations that cross it
 * are recorded and the loader scales them up.
 */
/* No vmlinux.h and no CO-RE here: uprobes need no kernel types, and an
 * object without relocations spares the loader parsing the kernel's BTF. */
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "heapprobe.h"

char LICENSE[] SEC("license") = "GPL";

typedef __u32 u32;
typedef __u64 u64;
typedef __s64 s64;

const volatile unsigned long long sample_bytes = 0;

struct hp_pending {
    u64 size;
    u64 old_ptr;  /* realloc */
    u64 memptr;   /* posix_memalign's out parameter */
    u64 site;
    u32 sampled;
    u32 _pad;
};

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, u32);
    __type(value, struct hp_pending);
} hp_pending SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, u32);
    __type(value, s64);
} hp_countdown SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, HP_MAX_LIVE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, u64);
    __type(value, struct hp_live);
} live SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, HP_MAX_SITES);
    __type(key, u64);
    __type(value, struct hp_stack);
} site_stacks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, HP_MAX_SITES);
    __type(key, u64);
    __type(value, struct hp_site_stats);
} site_stats SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, struct hp_stack);
} scratch SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, HP_STAT_COUNT);
    __type(key, u32);
    __type(value, u64);
} hp_stats SEC(".maps");

static __always_inline void stat_add(u32 which, u64 n) {
    u64 *v = bpf_map_lookup_elem(&hp_stats, &which);
    if (v) *v += n;
}

/* -ln((i + 0.5) / 64), scaled so the mean is exactly 1024: exponential
 * draws (mean 1) for the sampling countdown. */
static const u32 neg_ln[64] = {
    4995, 3864, 3338, 2992, 2733, 2527, 2355, 2207, 2079, 1964, 1861, 1767, 1681, 1602,
    1529, 1460, 1396, 1335, 1278, 1224, 1172, 1123, 1076, 1032, 989, 947, 908, 870,
    833, 797, 763, 730, 698, 666, 636, 607, 578, 550, 523, 497, 471, 446,
    421, 398, 374, 351, 329, 307, 286, 265, 244, 224, 204, 184, 165, 147,
    128, 110, 93, 75, 58, 41, 24, 8,};

/* Sampling: does this request of size bytes get recorded? */
static __always_inline int sample(u64 size) {
    if (!sample_bytes) return 1;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    s64 *left = bpf_map_lookup_elem(&hp_countdown, &tid);
    if (!left) {
        s64 first = (s64)(sample_bytes * neg_ln[bpf_get_prandom_u32() & 63] / 1024);
        bpf_map_update_elem(&hp_countdown, &tid, &first, BPF_ANY);
        left = bpf_map_lookup_elem(&hp_countdown, &tid);
        if (!left) return 0;
    }
    *left -= (s64)size;
    if (*left > 0) {
        stat_add(HP_STAT_SKIPPED, 1);
        stat_add(HP_STAT_SKIPPED_BYTES, size);
        return 0;
    }
    /* Crossings of several periods by one big request count once: its
     * weight in the loader accounts for the size. */
    *left = (s64)(sample_bytes * neg_ln[bpf_get_prandom_u32() & 63] / 1024) + 1;
    return 1;
}

/* Hash of the call stack at an allocator's entry; stores the stack once. */
static __always_inline u64 site_of(struct pt_regs *ctx) {
    u32 zero = 0;
    struct hp_stack *st = bpf_map_lookup_elem(&scratch, &zero);
    if (!st) return 0;
    u64 ret_addr = 0;
    bpf_probe_read_user(&ret_addr, sizeof ret_addr, (void *)PT_REGS_SP(ctx));
    long n = bpf_get_stack(ctx, st->frames, sizeof st->frames, BPF_F_USER_STACK);
    if (n < 0) n = 0;
    n /= 8;
    if (n < 1) n = 1;
    st->frames[0] = ret_addr; /* replaces the allocator's own ip */
    st->nframes = (u32)n;
    u64 h = 0xcbf29ce484222325ull ^ (u64)n;
    for (int i = 0; i < HP_MAX_FRAMES; i++) {
        if (i >= n) break;
        h ^= st->frames[i];
        h *= 0x100000001b3ull;
        h ^= h >> 29;
    }
    if (!h) h = 1;
    if (!bpf_map_lookup_elem(&site_stacks, &h)) bpf_map_update_elem(&site_stacks, &h, st, BPF_NOEXIST);
    return h;
}

static __always_inline int enter(struct pt_regs *ctx, u64 size, u64 old_ptr, u64 memptr) {
    struct hp_pending p = {.size = size, .old_ptr = old_ptr, .memptr = memptr};
    p.sampled = sample(size);
    p.site = p.sampled ? site_of(ctx) : 0;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    bpf_map_update_elem(&hp_pending, &tid, &p, BPF_ANY);
    return 0;
}

static __always_inline void count_site(u64 site, s64 allocs, s64 bytes) {
    struct hp_site_stats *s = bpf_map_lookup_elem(&site_stats, &site);
    if (!s) {
        struct hp_site_stats fresh = {};
        bpf_map_update_elem(&site_stats, &site, &fresh, BPF_NOEXIST);
        s = bpf_map_lookup_elem(&site_stats, &site);
        if (!s) return;
    }
    if (allocs > 0) {
        __sync_fetch_and_add(&s->allocs, 1);
        __sync_fetch_and_add(&s->alloc_bytes, bytes);
    } else {
        __sync_fetch_and_add(&s->frees, 1);
    }
    __sync_fetch_and_add(&s->live_allocs, allocs);
    __sync_fetch_and_add(&s->live_bytes, allocs > 0 ? bytes : -bytes);
}

/* Forgets ptr if it was recorded; counts it unknown otherwise. */
static __always_inline void forget(u64 ptr) {
    if (!ptr) return;
    struct hp_live *l = bpf_map_lookup_elem(&live, &ptr);
    if (!l) {
        stat_add(HP_STAT_UNKNOWN_FREES, 1);
        return;
    }
    u64 site = l->site, size = l->size;
    if (bpf_map_delete_elem(&live, &ptr) == 0) count_site(site, -1, (s64)size);
}

static __always_inline void record(u64 ptr, struct hp_pending *p) {
    if (!p->sampled) return;
    struct hp_live l = {.size = p->size, .site = p->site, .birth_ns = bpf_ktime_get_ns()};
    if (bpf_map_update_elem(&live, &ptr, &l, BPF_ANY) != 0) {
        stat_add(HP_STAT_TABLE_FULL, 1);
        return;
    }
    count_site(p->site, 1, (s64)p->size);
}

static __always_inline int leave(struct pt_regs *ctx) {
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct hp_pending *pp = bpf_map_lookup_elem(&hp_pending, &tid);
    if (!pp) return 0;
    struct hp_pending p = *pp;
    bpf_map_delete_elem(&hp_pending, &tid);
    u64 ptr = PT_REGS_RC(ctx);
    if (p.memptr) { /* posix_memalign returns 0 and stores the pointer */
        if (ptr != 0) {
            stat_add(HP_STAT_FAILED, 1);
            return 0;
        }
        if (bpf_probe_read_user(&ptr, sizeof ptr, (void *)p.memptr)) return 0;
    }
    if (p.old_ptr) { /* realloc: the old block is gone unless it failed */
        if (!ptr && p.size) {
            stat_add(HP_STAT_FAILED, 1);
            return 0;
        }
        forget(p.old_ptr);
    }
    if (!ptr) {
        if (p.size) stat_add(HP_STAT_FAILED, 1);
        return 0;
    }
    record(ptr, &p);
    return 0;
}

SEC("uprobe")
int BPF_KPROBE(hp_malloc, u64 size) { return enter(ctx, size, 0, 0); }

SEC("uprobe")
int BPF_KPROBE(hp_calloc, u64 n, u64 size) { return enter(ctx, n * size, 0, 0); }

SEC("uprobe")
int BPF_KPROBE(hp_realloc, u64 ptr, u64 size) {
    if (!ptr) return enter(ctx, size, 0, 0);
    return enter(ctx, size, ptr, 0);
}

SEC("uprobe")
int BPF_KPROBE(hp_posix_memalign, u64 memptr, u64 align, u64 size) {
    return enter(ctx, size, 0, memptr);
}

SEC("uprobe")
int BPF_KPROBE(hp_aligned_alloc, u64 align, u64 size) { return enter(ctx, size, 0, 0); }

SEC("uprobe")
int BPF_KPROBE(hp_valloc, u64 size) { return enter(ctx, size, 0, 0); }

SEC("uretprobe")
int BPF_KRETPROBE(hp_ret) { return leave(ctx); }

SEC("uprobe")
int BPF_KPROBE(hp_free, u64 ptr) {
    forget(ptr);
    return 0;
}
