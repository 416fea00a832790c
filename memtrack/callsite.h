/* callsite.h - which call site and subsystem an allocation belongs to,
 * without unwinding the stack on every malloc.
 *
 * The key of the fast path is (return address of the malloc call, frame
 * address of the hook): the same code reached through the same call chain on
 * the same thread stack lands on the same pair, and both cost nothing to
 * read. The first allocations through a new pair unwind the whole stack
 * (libunwind), classify it with the rules (cached per stack) and intern its
 * site; the pair then maps straight to (site, subsystem). One allocation in
 * LEAKSCOPE_HEAP_VERIFY_EVERY (default 256, 1 = always) is unwound anyway; if
 * a pair ever shows two different stacks it is marked ambiguous and every
 * allocation through it is unwound from then on.
 */
#ifndef MEMTRACK_CALLSITE_H
#define MEMTRACK_CALLSITE_H

#include <stdint.h>

struct site_ref {
    uint32_t site;   /* index + 1, 0 when the site table is full */
    uint32_t subsys;
};

int callsite_init(void);

/* Hot path; ra = __builtin_return_address(0) of the hook, fp = its frame. */
struct site_ref callsite_resolve(uintptr_t ra, uintptr_t fp);

/* Cold paths for double-free reports: the site of the current stack from ra
 * outwards, and a one-frame site for a bare return address. */
uint32_t callsite_stack_site(uintptr_t ra);
uint32_t callsite_frame_site(uintptr_t ra);

#endif
