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
 * lock and never allocate. Stacks are classified against a module address
 * table (modmap.h), never with dladdr(). Sites and frames: docs/CALLSITES.md.
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

/* The segment once initialized, else NULL. One atomic load; in a fork
 * child that has no segment yet (see lks_trace_pending_fork), makes it. */
struct lks_header *lks_trace_seg(void);

/* 1 in a fork child whose segment waits for its first event: most children
 * exec first and never need one. Such a child writes nothing shared. */
int lks_trace_pending_fork(void);

/* The rules in force. Valid once lks_trace_init() returned non-NULL. */
const struct lks_rules *lks_trace_rules(void);

/* Monotonic clock in ns for ages: the coarse clock (vDSO, a few ns, tick
 * resolution) is plenty for "open for 3 hours". */
static inline int64_t lks_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The stack from the frame whose return address is ra and whose stack
 * pointer (after the return) is sp, up to max frames; sp 0 matches any.
 * Replays frame sizes libunwind has taught it and runs libunwind where one
 * is unknown or once in a while to check them (see stack.c). libunwind runs
 * on a private per-thread stack, so a hook on a small sigaltstack or deep
 * in a recursion is safe. Returns >= 1: ra alone when nothing else is
 * known (a third nested capture, signals interrupting captures). */
int lks_stack_walk(uint64_t ra, uint64_t sp, uint64_t *frames, int max);

/* Sets up the capture areas' thread-exit key and the frame-size table;
 * once, from lks_trace_init. */
void lks_stack_init(void);

/* Hash of a stack; never 0. */
uint64_t lks_stack_hash(const uint64_t *frames, int n);

/* Stack-rule bits of a stack (see rules.h), cached by stack hash; a new
 * stack costs a binary search per frame. */
uint64_t lks_stack_rule_bits(uint64_t hash, const uint64_t *frames, int n);

/* Stack-rule bits of one native return address (module and func rules). */
uint64_t lks_frame_rule_bits(uint64_t ra);

/* Finds or creates the site for (stack of return addresses, subsys).
 * Returns its index + 1. A stack that finds no slot is interned on its
 * innermost 6, 3, then 1 frames (LKS_SITE_COARSE, counted in sites_coarse);
 * 0 only when even that fails (counted in sites_dropped_events). */
uint32_t lks_site_intern(uint64_t hash, const uint64_t *frames, int n, uint64_t rule_bits,
                         int subsys);

/* Finds or creates a site from frames already interned (frame ids as
 * returned by lks_frame_intern_*, innermost first; for stacks that mix
 * interpreter and native frames). hash is the caller's hash of the stack,
 * used as the site key with subsys. Returns index + 1, or 0 if full. */
uint32_t lks_site_intern_frames(uint64_t hash, const uint32_t *frame_ids, int n,
                                uint64_t rule_bits, int subsys, uint32_t flags);

/* The same stack as site, counted in another subsystem (index + 1 or 0). */
uint32_t lks_site_resubsys(uint32_t site, int subsys);

/* Interns a native frame (return address). Returns its id (index + 1), or
 * 0 when the frame table is full (counted in frames_dropped). */
uint32_t lks_frame_intern_native(uint64_t ra);

/* Interns an interpreter frame: kind (LKS_FRAME_PYTHON), key = any hash of
 * (code identity, line) (bit 63 is set for it), code = the code object's
 * identity, line, and the function and file names (copied into the string
 * area once per distinct string). Returns its id, or 0 when full. */
uint32_t lks_frame_intern_interp(int kind, uint64_t key, uint64_t code, uint32_t line,
                                 const char *func, const char *file);

/* Interns a string into the segment's string area; returns its offset, or
 * 0 ("") when the area is full (counted in strings_dropped) or lost a race. */
uint32_t lks_string_intern(const char *str);

/* Sites are claimed in order: those claimed so far are the first n entries
 * of the site table (an entry with key 0 among them is a hole left by a
 * race, or still being added: skip it). n may exceed a table's capacity:
 * clamp it. Private state, valid in a fork child before it has a segment.
 * For walking the used sites without touching the pages of unused ones (the
 * segment is sparse). */
uint32_t lks_sites_claimed(void);

/* In a fork child without a segment yet: the site the parent had for
 * (hash, subsys) at the fork, or 0. Lets a hook skip interning frames. */
uint32_t lks_site_inherited(uint64_t hash, int subsys);

/* The site for index + 1 as returned by lks_site_intern, or NULL. */
struct lks_site *lks_site_get(uint32_t site);

/* Marks which view a shim provides (LKS_FEATURE_*). */
void lks_trace_feature(uint32_t feature);

/* Hooks a shim wants run in a fork child once its segment has been made
 * and copied (at most 4): at the child's first event, possibly in a signal
 * handler or with the shim's own locks held, so they must take no lock. */
void lks_trace_on_fork_child(void (*fn)(void));

#endif
