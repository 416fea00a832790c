/* probes.h - `leakscope attach` without the command line: load the eBPF
 * probes for a running process, keep its segment (and those of the children
 * it forks) up to date, and detach leaving nothing loaded.
 *
 * Contract: probes_attach() either returns 0 with everything attached, or -1
 * with nothing left loaded and a one-line reason in err; *code is then 2 for
 * "cannot trace here" (privileges, BTF, target) and 1 otherwise.
 * probes_detach() is safe to call after any outcome and always unloads.
 */
#ifndef LKS_PROBES_H
#define LKS_PROBES_H

#include <stdint.h>
#include <sys/types.h>

#include "rules.h"
#include "target.h"

#define PROBES_MAX_TARGETS 64 /* live at once: a child's slot is freed at its exit */

struct probes_opts {
    pid_t pid;
    int want_fd, want_heap;
    uint64_t sample_bytes; /* 0: every allocation */
    const char *dir;
    const char *session;
    const struct lks_rules *rules;
};

struct fdprobe_bpf;
struct heapprobe_bpf;
struct ring_buffer;
struct bpf_link;
struct unwinder;

struct probes {
    struct probes_opts opts;
    struct lks_target targets[PROBES_MAX_TARGETS];
    struct unwinder *unwinders[PROBES_MAX_TARGETS];
    int ntargets;
    struct fdprobe_bpf *fd_skel;
    struct ring_buffer *ring;
    struct heapprobe_bpf *heap_skel;
    struct bpf_link *heap_links[32];
    int nheap_links;
    char libc[512]; /* where the allocator probes are */
    /* Kernel site hash -> segment site (index + 1), open addressing. */
    uint64_t site_keys[1 << 15];
    uint32_t site_vals[1 << 15];
    /* Sampling mode: live heap estimate and its standard error. */
    double est_live_bytes, est_live_sd;
    /* Call-site quality, said in the output. */
    uint64_t stacks, stacks_unwound, stacks_missing;
    uint64_t events_lost;
    uint64_t children_missed; /* forked while PROBES_MAX_TARGETS were live */
    uint64_t heap_failed, heap_table_full, heap_unknown_frees;
    double attach_s, detach_s;
};

int probes_attach(struct probes *p, const struct probes_opts *o, int *code, char *err,
                  size_t errlen);

/* Handles pending events for up to timeout_ms. Returns 1 once the traced
 * process has exited (its children may still run), else 0. */
int probes_poll(struct probes *p, int timeout_ms);

/* Rewrites the heap view of the segment from the kernel tables. */
void probes_sync_heap(struct probes *p);

/* Final sync, unload everything, finalize and unmap the segments. */
void probes_detach(struct probes *p);

/* Internal: the descriptor and heap halves (fdprobe.c, heapprobe.c). */
int fdprobe_attach(struct probes *p, char *err, size_t errlen);
void fdprobe_detach(struct probes *p);
int heapprobe_attach(struct probes *p, char *err, size_t errlen);
void heapprobe_detach(struct probes *p);
struct lks_target *probes_target(struct probes *p, pid_t pid);

#endif
