/* trace.h - the in-process runtime shared by the preload shims
 * (libleakscope-trace.so, loaded once even when both shims are preloaded).
 *
 * It owns the process's segment and rules, captures and interns call sites,
 * and handles fork (the child gets its own segment with the parent's state)
 * and exit (reconciliation with /proc/self/fd). If the segment cannot be
 * created, lks_trace_seg() stays NULL, one line on stderr says why, and the
 * shims forward every call untouched.
 *
 * Hot-path contract: lks_trace_*() functions below that a hook calls take no
 * lock and never allocate; the first time a stack is seen (cold path) they
 * call dladdr() to classify it.
 */
#ifndef LKS_TRACE_H
#define LKS_TRACE_H

#include <stdint.h>
#include <time.h>

#include "rules.h"
#include "segment.h"

#define LKS_EXPORT __attribute__((visibility("default")))

/* Re-entrancy guard: a hook that finds it set forwards the call untouched.
 * initial-exec TLS: no allocation, no lock, safe inside malloc. */
extern __thread int lks_in_hook __attribute__((tls_model("initial-exec")));

/* Added to lks_in_hook in the child of vfork() (libfdtrack's vfork): the
 * child shares the parent's memory and segment, so every hook forwards
 * untouched until it execs or exits; the parent restores the guard. */
#define LKS_IN_VFORK_CHILD (1 << 16)

/* Initializes once (segment, rules, fork handler); safe to call from any
 * hook and from constructors. Returns the segment, or NULL when tracing is
 * off (failed, disabled, or in progress on this thread). */
struct lks_header *lks_trace_init(void);

/* The segment once initialized, else NULL. One atomic load. */
struct lks_header *lks_trace_seg(void);

/* The rules in force. Valid once lks_trace_init() returned non-NULL. */
const struct lks_rules *lks_trace_rules(void);

/* Monotonic clock in ns for ages: the coarse clock (vDSO, a few ns, tick
 * resolution) is plenty for "open for 3 hours". */
static inline int64_t lks_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Captures up to max return addresses of the caller's stack with libunwind,
 * dropping the innermost `skip` frames (the hook's own). Returns the count. */
int lks_stack_capture(uint64_t *frames, int max, int skip);

/* Hash of a stack; never 0. */
uint64_t lks_stack_hash(const uint64_t *frames, int n);

/* Stack-rule bits of a stack (see rules.h), cached by stack hash; the first
 * look-up of a stack symbolizes it with dladdr(). */
uint64_t lks_stack_rule_bits(uint64_t hash, const uint64_t *frames, int n);

/* Finds or creates the site for (stack, subsys). Returns its index + 1, or 0
 * when the table is full (counted in sites_dropped). */
uint32_t lks_site_intern(uint64_t hash, const uint64_t *frames, int n, uint64_t rule_bits,
                         int subsys);

/* The site for index + 1 as returned by lks_site_intern, or NULL. */
struct lks_site *lks_site_get(uint32_t site);

/* Marks which view a shim provides (LKS_FEATURE_*). */
void lks_trace_feature(uint32_t feature);

/* Hooks a shim wants run in the child after fork, after the segment has
 * been copied (at most 4). */
void lks_trace_on_fork_child(void (*fn)(void));

#endif
